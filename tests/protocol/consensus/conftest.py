"""Small fixtures for the consensus unit tests: a 4-validator set with simulation keys."""

from __future__ import annotations

import pytest

from cybermesh.protocol.consensus.messages import Block, QuorumCert, genesis_qc
from cybermesh.protocol.consensus.quorum import CertificateVerifier, EpochState
from cybermesh.protocol.consensus.signatures import Domains
from cybermesh.protocol.consensus.sim.keys import SimSigner, SimVerifier, sim_public_key
from cybermesh.protocol.consensus.sim.world import genesis_block
from cybermesh.protocol.validator_set import Validator, ValidatorSet

IDS = ("v00", "v01", "v02", "v03")
DOMAINS = Domains.for_chain("test-chain")


def secret(vid: str) -> bytes:
    return vid.encode().ljust(32, b"\x00")


class Net:
    def __init__(self) -> None:
        self.signers = {vid: SimSigner(vid, secret(vid)) for vid in IDS}
        self.verifier = SimVerifier({sim_public_key(secret(v)): secret(v) for v in IDS})
        self.validator_set = ValidatorSet(0, tuple(Validator(v, sim_public_key(secret(v)), 1)
                                                   for v in IDS))
        self.genesis = genesis_block(self.validator_set)
        self.epoch = EpochState(0, self.validator_set, self.genesis.block_id, 0)
        self.certs = CertificateVerifier(verifier=self.verifier, domains=DOMAINS)

    def block(self, view: int, qc: QuorumCert, payload: bytes = b"p") -> Block:
        return Block(epoch=0, view=view, height=qc.height + 1, parent_id=qc.block_id,
                     proposer=IDS[view % 4], timestamp_ms=view, payload=payload,
                     tx_root=b"\x01" * 32, state_root=b"\x02" * 32,
                     validator_set_hash=self.validator_set.digest(), qc=qc)

    def qc_for(self, block: Block, signers: tuple[str, ...] = IDS[:3]) -> QuorumCert:
        sigs = tuple(sorted((s, self.signers[s].sign(DOMAINS.vote, block.statement()))
                            for s in signers))
        return QuorumCert(0, block.view, block.block_id, block.height, sigs)

    @property
    def genesis_qc(self) -> QuorumCert:
        return genesis_qc(0, self.genesis.block_id, 0)


@pytest.fixture
def net() -> Net:
    return Net()
