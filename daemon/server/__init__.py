"""The enrollment server (`facegate server / enroll / remove / list / keygen / reembed`).

It runs on the enrollment server or an admin's machine, never on a door:

    photos -> gate (one sharp, large, confident face; consistent with the person's other
    photos) -> the devices' own detector, aligner and encoder -> a person record signed
    with the server's Ed25519 key -> retained at facegate/<site>/enroll/<model_id>/<person_id>

``gate`` and ``photos`` judge and embed photos, ``archive`` keeps them (opt-in) for
re-embedding with a future model, ``publish`` builds the signed messages, ``store`` keeps
everything ever published, ``client`` talks to the broker, ``tool`` holds the operations
the command line calls, and ``service`` is `facegate server` (keeps the broker in step
with the store, signs the site manifest). Import from those modules: this package
imports nothing, so building the command line's parser stays cheap.
"""
