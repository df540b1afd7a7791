"""Packs: the one format objects travel in and rest in (client's .muse/packs, hub storage).

One module per concept: ``codec`` (the byte format: writer, block reader, records),
``index`` (the id -> position index beside each pack), ``cache`` (decompressed blocks),
``file`` (one pack at rest: random access and passes), ``write`` (receiving or writing a
pack into a directory, verified in one pass) and ``packset`` (every pack of a directory
behind one reader). Import the module you need; this package imports nothing.
"""
