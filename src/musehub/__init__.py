"""MuseHub: the server that hosts Muse repositories (docs/wire.md).

Layout: ``config`` (Settings), ``db`` (models, Database, migrations), ``storage`` (object
storage backends), ``auth`` / ``ratelimit`` (who may do what, how often), ``api`` (the JSON
repository API), ``protocol`` (MuseWire endpoints), ``app`` (the Starlette application that
glues them), ``cli`` (the ``musehub`` command).
"""
