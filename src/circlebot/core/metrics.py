"""What the bot counts for `/metrics` (Prometheus): commands, errors, posts, votes, reconnects, scheduler lateness.

Each bot has its own `CollectorRegistry` (never prometheus-client's global one), so two bots in one process (the
tests) count separately. The core counts; the web package only serves `registry` in the text format."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# scheduler lateness, in seconds: a post due at 19:00:00 that starts at 19:00:00.03 is 0.03 s late
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class Metrics:
    """The bot's counters, registered in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter("circlebot_commands", "Commands handled, by command and outcome "
                                "(ok, usage, refused, error)", ["command", "outcome"], registry=self.registry)
        self.errors = Counter("circlebot_errors", "Unexpected errors caught while handling an event, by where "
                              "(command, event)", ["where"], registry=self.registry)
        self.posts = Counter("circlebot_posts", "Timeline posts per location, by kind and outcome (sent; failed: a "
                             "try that failed and is retried; missed: given up or too late)", ["kind", "outcome"],
                             registry=self.registry)
        self.votes = Tally()  # counted on the vote path (once a vote), so read only when scraped
        self.lateness = Histogram("circlebot_scheduler_lateness_seconds", "How late a timeline post's job started "
                                  "after its due time", buckets=LATENESS_BUCKETS, registry=self.registry)
        self._platforms: Callable[[], Mapping[str, tuple[int, bool]]] | None = None
        self.registry.register(_PlatformCollector(self))

    def watch_platforms(self, read: Callable[[], Mapping[str, tuple[int, bool]]]) -> None:
        """Read each platform's (reconnects so far, connected now) at every scrape."""
        self._platforms = read

    def platforms(self) -> Mapping[str, tuple[int, bool]]:
        return self._platforms() if self._platforms is not None else {}


class Tally:
    """A counter that costs one addition (prometheus-client's `Counter.inc` takes a lock: about 0.4 us, a tenth
    of what storing a vote costs the event loop); the bot counts in the loop's thread only. Served as a counter
    by `_PlatformCollector` at each scrape."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class _PlatformCollector(Collector):
    """Platform reconnects and connection state, read from the adapters when scraped; and the votes tally."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        reconnects = CounterMetricFamily("circlebot_platform_reconnects", "Times a platform's connection was "
                                         "re-established after it was lost", labels=["platform"])
        connected = GaugeMetricFamily("circlebot_platform_connected", "1 while the platform is connected",
                                      labels=["platform"])
        for platform, (count, up) in sorted(self._metrics.platforms().items()):
            reconnects.add_metric([platform], count)
            connected.add_metric([platform], 1 if up else 0)
        yield reconnects
        yield connected
        yield CounterMetricFamily("circlebot_votes_stored", "Votes stored (commands and native poll votes)",
                                  value=self._metrics.votes.value)
