"""The bridge's HTTP faces: `ops` (private: metrics and health) and `public` (behind the
ingress: callbacks, click-through, the subscription API, the employee page)."""
