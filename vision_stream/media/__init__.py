"""Media ingest: open sources, decode, sample, encode. Knows nothing of gRPC or models."""
