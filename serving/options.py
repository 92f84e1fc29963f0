"""gRPC channel/server options shared by the server and the client."""

# Largest gRPC message either side sends or accepts (a batch of ~100k Criteo-like rows fits).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
GRPC_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
