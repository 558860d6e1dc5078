"""What the door and the enrollment server say to each other over MQTT; both import it.

``topics`` (the topic tree), ``person`` (PersonRecord, the ids), ``records`` (strict
parsing of person records and tombstones), ``signing`` (Ed25519 over topic and body),
``manifest`` (the signed site manifest: built by the server, checked by the door),
``wire`` (compact JSON, ISO 8601 times) and ``broker`` (how to reach the broker:
address, credentials, TLS). The door's side of the link is daemon/door/, the server's
daemon/server/.
"""
