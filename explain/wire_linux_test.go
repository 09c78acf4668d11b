//go:build linux

package explain

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/netnstest"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Packets for the differential test are built byte by byte and sent from
// packet sockets, so that their source can be any address of a rule's
// range and their ports, ICMP ids and TCP flags whatever the test needs;
// they are recognised on arrival by a marker in their payload.

// marker starts the payload of every test packet; a 32-bit ID follows.
var marker = []byte("RMPTDIFF")

// wire is one IP packet to build.
type wire struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16 // TCP and UDP
	tcpFlags     uint8
	seq, ack     uint32
	icmpType     uint8
	icmpID       uint16
	id           uint32 // marker ID
}

// TCP flags and ICMP types used.
const (
	tcpSYN = 0x02
	tcpACK = 0x10

	icmpEchoRequest   = 8
	icmpEchoReply     = 0
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

// checksum is the Internet checksum of the concatenation of parts.
func checksum(parts ...[]byte) uint16 {
	var buf []byte
	for _, p := range parts {
		buf = append(buf, p...)
	}
	var sum uint32
	for i := 0; i+1 < len(buf); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(buf[i:]))
	}
	if len(buf)%2 == 1 {
		sum += uint32(buf[len(buf)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// bytes returns the IP packet.
func (w wire) bytes() []byte {
	payload := binary.BigEndian.AppendUint32(append([]byte(nil), marker...), w.id)
	v6 := w.src.Is6()
	src, dst := w.src.AsSlice(), w.dst.AsSlice()
	var l4 []byte
	switch w.proto {
	case 6:
		l4 = binary.BigEndian.AppendUint16(l4, w.sport)
		l4 = binary.BigEndian.AppendUint16(l4, w.dport)
		l4 = binary.BigEndian.AppendUint32(l4, w.seq)
		l4 = binary.BigEndian.AppendUint32(l4, w.ack)
		l4 = append(l4, 5<<4, w.tcpFlags, 0xfa, 0xf0, 0, 0, 0, 0) // window 64240
		l4 = append(l4, payload...)
	case 17:
		l4 = binary.BigEndian.AppendUint16(l4, w.sport)
		l4 = binary.BigEndian.AppendUint16(l4, w.dport)
		l4 = binary.BigEndian.AppendUint16(l4, uint16(8+len(payload)))
		l4 = append(l4, 0, 0)
		l4 = append(l4, payload...)
	case 1, 58:
		l4 = append(l4, w.icmpType, 0, 0, 0)
		l4 = binary.BigEndian.AppendUint16(l4, w.icmpID)
		l4 = binary.BigEndian.AppendUint16(l4, 1) // sequence
		l4 = append(l4, payload...)
	default:
		l4 = payload
	}
	// The pseudo-header of TCP, UDP and ICMPv6 checksums.
	var pseudo []byte
	pseudo = append(pseudo, src...)
	pseudo = append(pseudo, dst...)
	if v6 {
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(l4)))
		pseudo = append(pseudo, 0, 0, 0, w.proto)
	} else {
		pseudo = append(pseudo, 0, w.proto)
		pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(l4)))
	}
	switch w.proto {
	case 6:
		binary.BigEndian.PutUint16(l4[16:], checksum(pseudo, l4))
	case 17:
		c := checksum(pseudo, l4)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	case 1:
		binary.BigEndian.PutUint16(l4[2:], checksum(l4))
	case 58:
		binary.BigEndian.PutUint16(l4[2:], checksum(pseudo, l4))
	}
	var ip []byte
	if v6 {
		ip = append(ip, 0x60, 0, 0, 0)
		ip = binary.BigEndian.AppendUint16(ip, uint16(len(l4)))
		ip = append(ip, w.proto, 64)
		ip = append(ip, src...)
		ip = append(ip, dst...)
	} else {
		ip = append(ip, 0x45, 0)
		ip = binary.BigEndian.AppendUint16(ip, uint16(20+len(l4)))
		ip = binary.BigEndian.AppendUint16(ip, uint16(w.id))
		ip = append(ip, 0, 0, 64, w.proto, 0, 0)
		ip = append(ip, src...)
		ip = append(ip, dst...)
		binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	}
	return append(ip, l4...)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// endpoint is a namespace at the end of a veth whose other end is in the
// router: it sends test packets to the router and records those the
// router forwards to it.
type endpoint struct {
	role    string
	ns      string
	h       netns.NsHandle
	ifindex int              // eth0
	gw      net.HardwareAddr // the router's end of the veth
	send    int              // packet socket (SOCK_DGRAM)
}

// transmit sends an IP packet to the router.
func (e *endpoint) transmit(pkt []byte) error {
	proto := uint16(unix.ETH_P_IP)
	if pkt[0]>>4 == 6 {
		proto = unix.ETH_P_IPV6
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: e.ifindex, Halen: 6}
	copy(sa.Addr[:], e.gw)
	return unix.Sendto(e.send, pkt, 0, sa)
}

// recorder notes which endpoint each marked packet reached.
type recorder struct {
	mu   sync.Mutex
	seen map[uint32]string // marker ID -> endpoint role
}

func (r *recorder) at(id uint32) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	role, ok := r.seen[id]
	return role, ok
}

// listen records, until the test ends, the marked packets that reach e's
// eth0 addressed to it.
func (r *recorder) listen(tb testing.TB, e *endpoint) {
	tb.Helper()
	f, err := netnstest.InNS(e.h, func() (*os.File, error) {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return nil, err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: e.ifindex}); err != nil {
			unix.Close(fd)
			return nil, err
		}
		return os.NewFile(uintptr(fd), "packet-"+e.role), nil
	})
	if err != nil {
		tb.Fatalf("recorder in %s: %v", e.role, err)
	}
	raw, err := f.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	tb.Cleanup(func() {
		f.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			var n int
			var from unix.Sockaddr
			var rerr error
			err := raw.Read(func(fd uintptr) bool {
				n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
				return !errors.Is(rerr, unix.EAGAIN)
			})
			if err != nil {
				return // closed
			}
			if rerr != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype != unix.PACKET_HOST {
				continue // e's own packets going out
			}
			i := bytes.Index(buf[:n], marker)
			if i < 0 || i+len(marker)+4 > n {
				continue
			}
			id := binary.BigEndian.Uint32(buf[i+len(marker):])
			r.mu.Lock()
			if prev, ok := r.seen[id]; ok && prev != e.role {
				r.seen[id] = prev + "+" + e.role
			} else {
				r.seen[id] = e.role
			}
			r.mu.Unlock()
		}
	}()
}

// diffNet is the test network, all of it in namespaces made for the test:
//
//	client --rc-- router --vs1-- s1 (owns 10.201.0.0/16, 2001:db8:201::/48)
//	                |---vs2-- s2 (owns 10.202.0.0/16, 2001:db8:202::/48)
//
// The router forwards everything else to the client. The endpoints hold
// no address and drop whatever reaches their IP stack, so that they never
// answer; their packet sockets see the packets first.
type diffNet struct {
	router     string
	routerH    netns.NsHandle
	client     *endpoint
	s1, s2     *endpoint
	rec        *recorder
	linkBlocks []netip.Prefix
}

func newDiffNet(t *testing.T) *diffNet {
	t.Helper()
	run := func(args ...string) { netnstest.Run(t, args...) }
	n := &diffNet{rec: &recorder{seen: map[uint32]string{}},
		linkBlocks: prefixes("10.99.0.0/16", "fd99::/16")}
	n.router, n.routerH = netnstest.NewNS(t, "r")
	rn := n.router
	run("ip", "netns", "exec", rn, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.all.send_redirects=0",
		"net.ipv4.conf.default.send_redirects=0")
	for i, spec := range []struct {
		e     **endpoint
		role  string
		iface string
	}{{&n.client, "c", "rc"}, {&n.s1, "s1", "vs1"}, {&n.s2, "s2", "vs2"}} {
		name, h := netnstest.NewNS(t, spec.role)
		run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run("ip", "-n", rn, "link", "add", spec.iface, "type", "veth", "peer", "name", "eth0", "netns", name)
		run("ip", "-n", rn, "addr", "add", fmt.Sprintf("10.99.%d.1/24", i), "dev", spec.iface)
		run("ip", "-n", rn, "addr", "add", fmt.Sprintf("fd99:%d::1/64", i), "dev", spec.iface, "nodad")
		run("ip", "-n", rn, "link", "set", spec.iface, "up")
		run("ip", "-n", name, "link", "set", "eth0", "up")
		run("ip", "netns", "exec", name, "nft", "add table inet sink; add chain inet sink pre { type filter hook prerouting priority -500; policy drop; }")
		eth0, err := netnstest.Interface(h, "eth0")
		if err != nil {
			t.Fatal(err)
		}
		gw, err := netnstest.Interface(n.routerH, spec.iface)
		if err != nil {
			t.Fatal(err)
		}
		// Permanent neighbours: the router never has to resolve them.
		run("ip", "-n", rn, "neigh", "replace", fmt.Sprintf("10.99.%d.2", i), "lladdr", eth0.HardwareAddr.String(), "dev", spec.iface, "nud", "permanent")
		run("ip", "-n", rn, "neigh", "replace", fmt.Sprintf("fd99:%d::2", i), "lladdr", eth0.HardwareAddr.String(), "dev", spec.iface, "nud", "permanent")
		run("ip", "netns", "exec", rn, "sysctl", "-qw", "net.ipv4.conf."+spec.iface+".rp_filter=0")
		e := &endpoint{role: spec.role, ns: name, h: h, ifindex: eth0.Index, gw: gw.HardwareAddr}
		e.send, err = netnstest.InNS(h, func() (int, error) {
			return unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		})
		if err != nil {
			t.Fatalf("packet socket in %s: %v", name, err)
		}
		t.Cleanup(func() { unix.Close(e.send) })
		*spec.e = e
		n.rec.listen(t, e)
	}
	run("ip", "-n", rn, "route", "add", "default", "via", "10.99.0.2", "dev", "rc")
	run("ip", "-n", rn, "-6", "route", "add", "default", "via", "fd99:0::2", "dev", "rc")
	for i, s := range []string{"s1", "s2"} {
		b := localBlocks[s]
		run("ip", "-n", rn, "route", "add", b[0].String(), "via", fmt.Sprintf("10.99.%d.2", i+1))
		run("ip", "-n", rn, "-6", "route", "add", b[1].String(), "via", fmt.Sprintf("fd99:%d::2", i+1))
	}
	// Connection tracking stays on in the router whatever the ruleset
	// (the enforcer's stateless chains hold no ct match), so that the
	// connections opened for return traffic are tracked.
	run("ip", "netns", "exec", rn, "nft",
		"add table inet difftest; add chain inet difftest pre { type filter hook prerouting priority -150; }; "+
			"add rule inet difftest pre ct state invalid counter; add rule inet difftest pre ct state new counter")
	// Window tracking is beside the point: the return packets are built,
	// not taken from a real connection.
	run("ip", "netns", "exec", rn, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_be_liberal=1")
	return n
}

// waitFor polls cond every 2 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}
