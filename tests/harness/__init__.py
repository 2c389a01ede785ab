"""Test harness: a private RabbitMQ broker (broker), the daemon runner (daemon) and small
helpers (common)."""
