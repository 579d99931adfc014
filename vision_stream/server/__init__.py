"""The gRPC service: proto conversion, sessions registry, health, reflection, shutdown."""
