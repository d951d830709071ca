"""`ymera clients` and `ymera nats`: who may connect to the deployment's NATS, as what.

    ymera clients add PRINCIPAL     a client key (client.PRINCIPAL.key, 0600) for a user or service
    ymera clients list              every client key, with its principal and NATS nkey
    ymera nats authorization        the server's authorization block: every actor's and client's key

A client submits, cancels and rates with its key: the server lets that key publish nothing
else (bus/_access.py), and the principal of what it submits is the key's. The embedded server
reads the keys at each start, and is given a new client's at once (it reloads on SIGHUP); an
operator's own server takes the block `ymera nats authorization` prints.
"""

from __future__ import annotations

import argparse
import re

from actors import Settings
from bus import reload_running, stream_policy
from events import CLIENT, YmeraError
from guard import Identity, authorization, nats_users

__all__ = ["add_clients_command"]

_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def add_clients_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    clients = sub.add_parser("clients", help="keys that users and services connect, submit and rate with")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True, metavar="COMMAND")
    add = clients_sub.add_parser("add", help="make a client key for PRINCIPAL and let it connect")
    add.add_argument("principal", metavar="PRINCIPAL", help="who submits with it (letters, digits, _ and -)")
    add.set_defaults(fn=cmd_clients_add)
    listing = clients_sub.add_parser("list", help="every client key, with its principal and NATS nkey")
    listing.set_defaults(fn=cmd_clients_list)
    nats = sub.add_parser("nats", help="the NATS server's side of the deployment")
    nats_sub = nats.add_subparsers(dest="nats_command", required=True, metavar="COMMAND")
    block = nats_sub.add_parser("authorization", help="print the authorization block a nats-server running "
                                                      "Ymera needs: every actor's and client's key, with what each "
                                                      "may publish")
    block.set_defaults(fn=cmd_nats_authorization)


def cmd_clients_add(settings: Settings, args: argparse.Namespace) -> int:
    principal = args.principal
    if not _PRINCIPAL.fullmatch(principal):
        raise YmeraError(f"clients add: principal {principal!r} is not valid: 1 to 64 letters, digits, _ or -, "
                         "starting with a letter or digit")
    path = settings.keys_dir / f"{CLIENT}.{principal}.key"
    if path.exists():
        raise YmeraError(f"clients add: {principal} already has a key ({path}); remove it and its .pub to replace it")
    key = Identity.load_or_create(settings.keys_dir, f"{CLIENT}.{principal}")
    text = authorization(settings.keys_dir, stream_policy(settings).name)
    reloaded = settings.nats_url is None and reload_running(settings.data_dir, text)
    print(f"client {principal}: key {path} (mode 0600), NATS nkey {key.nkey}")
    print(f"give it to {principal} with the actors' public keys ({settings.keys_dir}/*.pub); they connect with "
          f"YMERA_CLIENT_KEY=<path to it>")
    if reloaded:
        print("the embedded server running for this data dir now lets it in")
    elif settings.nats_url is not None:
        print(f"the server at {settings.nats_url} lets it in once given `ymera nats authorization` again")
    return 0


def cmd_clients_list(settings: Settings, args: argparse.Namespace) -> int:
    users = [u for u in nats_users(settings.keys_dir) if u.role == CLIENT]
    if not users:
        print(f"no client keys in {settings.keys_dir}: `ymera clients add PRINCIPAL` makes one")
        return 0
    width = max(len(u.name) for u in users)
    for user in users:
        print(f"{user.name.removeprefix(CLIENT + '.'):<{width}}  {user.nkey}")
    return 0


def cmd_nats_authorization(settings: Settings, args: argparse.Namespace) -> int:
    print(authorization(settings.keys_dir, stream_policy(settings).name), end="")
    return 0
