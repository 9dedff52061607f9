"""exmail-bridge: Tencent Exmail pushes to WeCom, webhooks and MQTT."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("exmail-bridge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
