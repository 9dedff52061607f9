"""WeCom-native mail (企业微信邮箱): unread counts by polling `qyapi` (no per-member push)."""
