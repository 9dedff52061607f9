"""The Exmail legacy OpenAPI: client and push decoding."""
