"""What runs on the door: ``facegate run``.

``service`` is the main loop over the pipeline stages (daemon/frames -> faces ->
quality -> embeddings -> matching -> liveness -> decision -> events); ``link`` is the
door's MQTT client and ``admission`` decides which received records the gallery may
apply (the site manifest's gate). The enrollment server is daemon/server/.
"""
