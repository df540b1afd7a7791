"""The staging environment of issue 15: MuseWire and git over a simulated WAN through a TLS
edge proxy. Its parts (a throwaway CA, nginx, a forward proxy, a delaying relay) are also what
the client's TLS and proxy tests start on loopback."""
