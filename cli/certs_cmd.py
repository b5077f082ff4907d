"""`raftcoord certs init DIR`: a development CA, certificates and tokens for a secure
local cluster.

Writes into DIR (private keys mode 0600):

* ``ca.pem`` / ``ca-key.pem``: the CA every node and client trusts (``--ca``);
* ``node.pem`` / ``node-key.pem``: the nodes' certificate, valid as server and as
  client (mutual TLS between peers) for localhost, 127.0.0.1, ::1 and each ``--host``;
* ``admin.pem``, ``worker.pem``, ``read-only.pem`` (+ ``-key.pem``): client
  certificates whose organizational unit is their role (`coordinator.security`);
* ``tokens``: a token file (``ROLE NAME TOKEN`` lines) with one random token per role,
  and ``admin.token``, ``worker.token``, ``read-only.token`` holding each alone.

For development and tests only: a production CA keeps its key offline.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Optional

import click

from coordinator.security import Role, new_token

_DAYS = 365


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: str, data: bytes, private: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject_key, subject_name, issuer_key, issuer_name, *, ca: bool,
                 sans: Optional[list] = None, server: bool = False, client: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject_name).issuer_name(issuer_name)
               .public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
    else:
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
            ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, unit: Optional[str] = None):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "raftcoord development"),
                  x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if unit:
        attributes.insert(1, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    return x509.Name(attributes)


def _subject_alt_names(hosts: list[str]) -> list:
    from cryptography import x509
    names: list = []
    for host in ["localhost", "127.0.0.1", "::1", *hosts]:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def create_dev_pki(directory: str, hosts: list[str] = ()) -> dict[str, str]:
    """Write the files listed in the module docstring into ``directory``.

    Returns:
        role value -> its token.
    """
    from cryptography.hazmat.primitives import serialization

    os.makedirs(directory, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca_key = _key()
    ca_name = _name("raftcoord development CA")
    ca_cert = _certificate(ca_key, ca_name, ca_key, ca_name, ca=True)
    _write(os.path.join(directory, "ca.pem"), ca_cert.public_bytes(pem))
    _write(os.path.join(directory, "ca-key.pem"), _pem_key(ca_key), private=True)

    node_key = _key()
    node_cert = _certificate(node_key, _name("raftcoord node", "node"), ca_key, ca_name,
                             ca=False, sans=_subject_alt_names(list(hosts)),
                             server=True, client=True)
    _write(os.path.join(directory, "node.pem"), node_cert.public_bytes(pem))
    _write(os.path.join(directory, "node-key.pem"), _pem_key(node_key), private=True)

    tokens: dict[str, str] = {}
    lines = ["# raftcoord tokens: ROLE NAME TOKEN (written by `raftcoord certs init`)"]
    for role in Role:
        key = _key()
        cert = _certificate(key, _name(f"raftcoord {role.value}", role.value), ca_key,
                            ca_name, ca=False, client=True)
        _write(os.path.join(directory, f"{role.value}.pem"), cert.public_bytes(pem))
        _write(os.path.join(directory, f"{role.value}-key.pem"), _pem_key(key), private=True)
        token = tokens[role.value] = new_token()
        lines.append(f"{role.value} dev-{role.value} {token}")
        _write(os.path.join(directory, f"{role.value}.token"), (token + "\n").encode(),
               private=True)
    _write(os.path.join(directory, "tokens"), ("\n".join(lines) + "\n").encode(), private=True)
    return tokens


@click.group("certs")
def certs() -> None:
    """Development certificates and tokens for a secure cluster."""


@certs.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--host", "hosts", multiple=True, metavar="NAME|IP",
              help="Another name or address the nodes' certificate is valid for "
                   "(repeatable; localhost, 127.0.0.1 and ::1 are always included).")
@click.option("--force", is_flag=True, help="Overwrite existing files in DIRECTORY.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def init(directory: str, hosts: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Create a development CA, node and client certificates and a token file in
    DIRECTORY; then start nodes with `serve --cert DIR/node.pem --key DIR/node-key.pem
    --ca DIR/ca.pem --tokens DIR/tokens`."""
    if os.path.exists(os.path.join(directory, "ca.pem")) and not force:
        raise click.ClickException(f"{directory} already holds a CA (use --force to replace "
                                   "it; every certificate signed by it stops working)")
    create_dev_pki(directory, list(hosts))
    files = {"ca": "ca.pem", "cert": "node.pem", "key": "node-key.pem", "tokens": "tokens"}
    paths = {name: os.path.join(directory, file) for name, file in files.items()}
    if as_json:
        import json
        click.echo(json.dumps(paths, indent=2, sort_keys=True))
        return
    click.echo(f"wrote a development CA, certificates and tokens to {directory}")
    click.echo(f"  serve with: --cert {paths['cert']} --key {paths['key']} --ca {paths['ca']} "
               f"--tokens {paths['tokens']}")
    click.echo(f"  clients:    --ca {paths['ca']} --token $(cat "
               f"{os.path.join(directory, 'admin.token')})")
