"""`manage.py demo_admin`: create (or reset) the local demo's admin login.

The password is random, written to a 0600 file and printed once by `make demo`; it never
appears in logs. Refused in production mode, where accounts are made with createsuperuser.
"""

from __future__ import annotations

import os
import secrets
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create or reset the demo admin user; writes its password to a 0600 file."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password-file", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo_admin is for local demos; use createsuperuser in production")
        path = Path(options["password_file"])
        if path.exists():
            password = path.read_text().strip()
        else:
            password = secrets.token_urlsafe(18)
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(password + "\n")
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=options["username"])
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"admin user {user.username!r} ready (password in {path})")
