"""Django helpers shared by every app: storage, database connections, request parameters, OpenAI's wire
format. They import Django but no Lathe app, so any app may use them and none depends on another through
them. The rest of `lathe_common` does not import Django at all (ML cores and child processes use it)."""
