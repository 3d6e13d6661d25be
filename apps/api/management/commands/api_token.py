"""``manage.py api_token create|revoke|list``: API tokens for scripts and dashboards.

``create`` prints the token once (it is stored only as a hash); ``list`` shows prefixes, never
secrets. Both writes are audited.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.api.models import ApiToken
from apps.api.tokens import issue_token, revoke_token


class Command(BaseCommand):
    help = "Create, revoke or list API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True,
                                         metavar="{create,revoke,list}")
        create = commands.add_parser("create", help="create a token and print it once")
        create.add_argument("--user", required=True, help="username the token acts as")
        create.add_argument("--name", required=True, help="what the token is for")
        create.add_argument("--days", type=int, default=0,
                            help="expire after this many days (0: never)")
        create.add_argument("--json", action="store_true", help="print JSON")
        revoke = commands.add_parser("revoke", help="revoke a token by its prefix")
        revoke.add_argument("prefix")
        listing = commands.add_parser("list", help="list tokens (prefixes only)")
        listing.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand == "create":
            self._create(options)
        elif subcommand == "revoke":
            if not revoke_token(prefix=options["prefix"], acting_user="cli"):
                raise CommandError(f"no live token with prefix {options['prefix']!r}")
            self.stdout.write(f"revoked {options['prefix']}")
        else:
            self._list(as_json=options["json"])

    def _create(self, options: dict[str, Any]) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        if options["days"] < 0:
            raise CommandError("--days must be 0 or more")
        expires = timezone.now() + timedelta(days=options["days"]) if options["days"] else None
        issued = issue_token(user=user, name=options["name"], acting_user="cli",
                             expires_at=expires)
        if options["json"]:
            self.stdout.write(json.dumps({"token": issued.token,
                                          "prefix": issued.record.prefix}))
        else:
            self.stdout.write(issued.token)

    def _list(self, *, as_json: bool) -> None:
        rows = [{"prefix": token.prefix, "user": token.user.get_username(),
                 "name": token.name, "created_at": token.created_at.isoformat(),
                 "expires_at": token.expires_at.isoformat() if token.expires_at else None,
                 "revoked": token.revoked_at is not None}
                for token in ApiToken.objects.select_related("user").order_by("prefix")]
        if as_json:
            self.stdout.write(json.dumps(rows))
            return
        for row in rows:
            state = "revoked" if row["revoked"] else "live"
            self.stdout.write(f"{row['prefix']}  {row['user']:<20} {state:<8} {row['name']}")
