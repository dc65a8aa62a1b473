"""The front-end SDKs' handshake (/v3/sdk/connect)."""
