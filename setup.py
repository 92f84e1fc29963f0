from setuptools import find_packages, setup

setup(
    name="tfctr",
    version="0.1.0",
    description="Click-through-rate prediction on TensorFlow: APG, KD-DAGFM, OptFusion, AdaEnsemble and baselines, "
    "from Parquet to TF Serving",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["tfctr", "tfctr.*"]) + ["tfctr.export", "tfctr.serving"],
    package_dir={"tfctr.export": "export", "tfctr.serving": "serving"},
    py_modules=["tfctr_command"],  # the console command; outside the package so that --help loads no TensorFlow
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tf-keras>=2.21,<2.22",
        "tensorboard>=2.20",
        "tensorflow-recommenders>=0.7.3,<0.8",
        "tensorflow-serving-api>=2.21,<2.22",
        "grpcio>=1.60",
        "pyarrow>=14",
        "numpy>=1.26",
    ],
    extras_require={
        "tune": ["optuna>=3.6"],
        "test": ["pytest>=8", "pytest-random-order>=1.1", "ruff>=0.5", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29", "matplotlib>=3.8",
                 "optuna>=3.6"],
        "bench": ["matplotlib>=3.8", "optuna>=3.6", "scikit-learn>=1.3", "lightgbm>=4.0", "pandas>=2.0",
                  "nbclient>=0.10", "nbformat>=5.10", "nbconvert>=7.0", "ipykernel>=6.29"],
    },
    entry_points={"console_scripts": ["tfctr=tfctr_command:main"]},
)
