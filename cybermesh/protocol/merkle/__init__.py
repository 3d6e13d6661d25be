"""Merkle structures: RFC 9162 transaction trees and the versioned sparse Merkle state tree."""
