"""reelfarm.v1: film_service_pb2 (messages) and film_service_pb2_grpc (stubs), generated."""
