from django.contrib.auth.models import AbstractBaseUser

from jobs.models import Checkpoint
from lathe_common.web.storage import data_folder_bytes


def stored_checkpoint_bytes(user: AbstractBaseUser) -> int:
    """The user's training checkpoints kept on disk (their storage quota, accounts/quotas.py)."""
    paths = Checkpoint.objects.filter(job__owner=user).values_list("path", flat=True)
    return sum(data_folder_bytes(path) for path in paths)
