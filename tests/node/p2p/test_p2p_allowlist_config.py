"""CIDR allowlist and the network configuration."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from apps.node.p2p.allowlist import Allowlist
from apps.node.p2p.config import NetworkConfig
from apps.node.p2p.errors import P2PConfigError
from apps.node.p2p.framing import Topic

pytestmark = pytest.mark.unit


def test_allowlist_checks_membership_by_family():
    allowlist = Allowlist.from_cidrs(["127.0.0.1/32", "10.0.0.0/8", "::1/128"])
    assert allowlist.allows("127.0.0.1")
    assert allowlist.allows("10.200.3.4")
    assert allowlist.allows("::1")
    assert not allowlist.allows("127.0.0.2")
    assert not allowlist.allows("11.0.0.1")
    assert not allowlist.allows("not an ip")


def test_ipv4_mapped_ipv6_is_checked_as_ipv4():
    allowlist = Allowlist.from_cidrs(["10.0.0.0/8"])
    assert allowlist.allows("::ffff:10.1.2.3")
    assert not allowlist.allows("::ffff:11.1.2.3")


def test_empty_allowlist_allows_nothing():
    assert not Allowlist.from_cidrs([]).allows("127.0.0.1")


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "300.0.0.0/8", "localhost"])
def test_bad_cidrs_are_refused(entry):
    with pytest.raises(P2PConfigError):
        Allowlist.from_cidrs([entry])


def test_config_from_settings_reads_the_documented_keys():
    settings = SimpleNamespace(
        P2P_LISTEN_HOST="0.0.0.0", P2P_LISTEN_PORT="7100",  # noqa: S104
        P2P_TOPICS={"vote": "cm/vote"}, P2P_MAX_MESSAGE_SIZE=2048, ALLOWED_IPS=["10.0.0.0/8"])
    config = NetworkConfig.from_settings(settings, chain_id="c", idle_timeout=3.0)
    assert config.listen_port == 7100
    assert config.allowed_ips == ("10.0.0.0/8",)
    assert config.names()[Topic.VOTE] == "cm/vote"
    assert config.names()[Topic.PROPOSAL] == "consensus/proposal"
    assert config.caps()[Topic.PROPOSAL] == 2048
    assert config.caps()[Topic.VOTE] == 2048  # default 4 KiB, clamped to the overall maximum
    assert config.idle_timeout == 3.0


def test_config_refuses_unknown_topic_kinds_and_bad_cidrs():
    with pytest.raises(P2PConfigError):
        NetworkConfig(chain_id="c", topic_names={"gossip": "x"})
    with pytest.raises(P2PConfigError):
        NetworkConfig(chain_id="c", allowed_ips=("10.0.0.1/8",))
