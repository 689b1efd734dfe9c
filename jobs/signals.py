"""What the job engine tells the rest of the site, without knowing who listens (the audit log)."""

from django.dispatch import Signal

# A job was created (`job`), inside its transaction: whoever started it is its owner.
job_created = Signal()
# A person asked a job to stop (`job`, `by`: that person), inside the cancel's transaction.
job_cancelled = Signal()
