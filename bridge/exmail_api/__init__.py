"""The new Exmail API (`api.exmail.qq.com`): tokens per app, calls, callbacks, SSO."""
