"""tfctr's version, in a module that imports nothing (``tfctr.__version__``)."""

__version__ = "0.1.0"
