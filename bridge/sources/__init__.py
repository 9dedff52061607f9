"""Sources: what turns one tenant's upstream into committed events.

Every source (the legacy listener, the new API's callback receiver and poller, the
WeCom-mail poller) produces typed pushes, turns them into events and commits them through
the one `Committer`; none knows about sinks. `build_source` picks the source of a tenant
by its `protocol` through the registry in `bridge.sources.registry`.
"""

from bridge.sources.base import Source
from bridge.sources.commit import Committer
from bridge.sources.registry import SOURCE_TYPES, SourceDeps, build_source

__all__ = ["SOURCE_TYPES", "Committer", "Source", "SourceDeps", "build_source"]
