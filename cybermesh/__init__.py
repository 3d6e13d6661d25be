"""CyberMesh control plane (Django project package).

Importing this package loads nothing else: the standalone verifier (``python -m
cybermesh.verify``) and the protocol core must run without Django. The Celery app is created
when Django starts (``CyberMeshConfig.ready``) and found by ``celery -A cybermesh`` through the
``cybermesh.celery`` module.
"""
