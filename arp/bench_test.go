package arp

import (
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/link"
)

// benchTable returns a table with 256 Reachable neighbours on 16 ports, about
// a busy node's worth, and their keys.
func benchTable(b *testing.B) (*Table, []benchKey) {
	h := &recorder{}
	table, err := New(DefaultConfig(), h, &fakeClock{})
	if err != nil {
		b.Fatal(err)
	}
	var keys []benchKey
	for i := range 256 {
		k := benchKey{uint32(i % 16), netip.AddrFrom4([4]byte{10, 244, byte(i % 16), byte(i)})}
		table.Resolve(k.port, k.ip)
		table.Learn(k.port, k.ip, link.HardwareAddr{0x02, 0, 0, 0, 0, byte(i)}, Reply)
		keys = append(keys, k)
	}
	return table, keys
}

type benchKey struct {
	port uint32
	ip   netip.Addr
}

func BenchmarkLookup(b *testing.B) {
	table, keys := benchTable(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		if _, ok := table.Lookup(k.port, k.ip); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	table, keys := benchTable(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := keys[i%len(keys)]
			if _, ok := table.Lookup(k.port, k.ip); !ok {
				b.Error("miss")
				return
			}
			i++
		}
	})
}
