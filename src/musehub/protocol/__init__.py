"""The hub's half of MuseWire (docs/wire.md §2-4): refs, push (stream/presign), fetch/bundle.

- repostore: where a repository's objects rest (packs in object storage + a local cache)
- receive: quarantine, verification and the compare-and-swap ref transaction of a push
- serve: negotiation and the pack (streamed or presigned bundles) answering a fetch
- routes: the HTTP endpoints gluing those to Starlette
"""
