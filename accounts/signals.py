"""What accounts tells the rest of the site, without knowing who listens."""

from django.dispatch import Signal

# A key or its owner's limits changed (a key revoked, a quota edited or removed): whatever keeps keys
# with their owner's limits in memory (the gateway, models_app/gateway/cache.py) forgets them. Sent inside
# the change's transaction; a receiver acts once it commits.
api_keys_changed = Signal()
