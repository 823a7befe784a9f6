"""``purge``: delete the ML data of users who withdrew consent (legal holds kept)."""
