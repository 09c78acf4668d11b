package packetlog

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"

	"github.com/rampart-fw/rampart/store"
)

// Header is what an entry tells of a logged packet: its addresses, its
// transport protocol and its ports.
type Header struct {
	Protocol        string // "TCP", "UDP", "ICMP" (ICMPv6 too, as in the store), or the protocol number
	Source          netip.Addr
	SourcePort      uint16 // 0 without ports (ICMP, a later fragment, ...)
	Destination     netip.Addr
	DestinationPort uint16
}

// errShort is returned for a packet too short for its own headers.
var errShort = errors.New("packet shorter than its headers")

// IPv6 extension headers that may come before the transport header.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6AH       = 51
	ipv6DestOpts = 60
)

// ParseHeader reads the IP header (IPv4 or IPv6, extension headers
// skipped) and the ports of a TCP or UDP header of b, a packet from its
// network header on, as NFLOG gives it (cut after a few dozen bytes: only
// headers are read).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 1 {
		return Header{}, errShort
	}
	var h Header
	var proto uint8
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return Header{}, errShort
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 {
			return Header{}, errors.New("bad IPv4 header length")
		}
		h.Source = netip.AddrFrom4([4]byte(b[12:16]))
		h.Destination = netip.AddrFrom4([4]byte(b[16:20]))
		proto = b[9]
		// Only the first fragment carries the transport header.
		if binary.BigEndian.Uint16(b[6:8])&0x1fff == 0 && len(b) >= ihl {
			l4 = b[ihl:]
		}
	case 6:
		if len(b) < 40 {
			return Header{}, errShort
		}
		h.Source = netip.AddrFrom16([16]byte(b[8:24]))
		h.Destination = netip.AddrFrom16([16]byte(b[24:40]))
		proto, l4 = skipExtensions(b[6], b[40:])
	default:
		return Header{}, errors.New("not an IP packet")
	}
	switch proto {
	case 6, 17:
		h.Protocol = string(store.TCP)
		if proto == 17 {
			h.Protocol = string(store.UDP)
		}
		if len(l4) >= 4 {
			h.SourcePort = binary.BigEndian.Uint16(l4[0:2])
			h.DestinationPort = binary.BigEndian.Uint16(l4[2:4])
		}
	case 1, 58:
		h.Protocol = string(store.ICMP)
	default:
		h.Protocol = strconv.Itoa(int(proto))
	}
	return h, nil
}

// skipExtensions follows IPv6's chain of extension headers from next, the
// first header's type, over rest, and returns the transport protocol and
// its header; the header is nil when the packet is cut short within the
// chain or is not a first fragment.
func skipExtensions(next uint8, rest []byte) (uint8, []byte) {
	for {
		var n int
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if len(rest) < 2 {
				return next, nil
			}
			n = (int(rest[1]) + 1) * 8
		case ipv6AH:
			if len(rest) < 2 {
				return next, nil
			}
			n = (int(rest[1]) + 2) * 4
		case ipv6Fragment:
			if len(rest) < 8 {
				return next, nil
			}
			if binary.BigEndian.Uint16(rest[2:4])&0xfff8 != 0 {
				return rest[0], nil
			}
			n = 8
		default:
			return next, rest
		}
		if len(rest) < n {
			return rest[0], nil
		}
		next, rest = rest[0], rest[n:]
	}
}
