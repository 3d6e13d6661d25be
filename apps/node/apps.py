from django.apps import AppConfig


class NodeConfig(AppConfig):
    """The node runtime: consensus worker, peer links, safety data, cluster tooling."""

    name = "apps.node"
    label = "node"
    verbose_name = "Node"
