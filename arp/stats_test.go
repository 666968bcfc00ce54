package arp

import (
	"reflect"
	"testing"
)

// TestStatsEachListsEveryField fails when a field is added to Stats but not
// to Each: every counter must reach /v1/stats.
func TestStatsEachListsEveryField(t *testing.T) {
	var s Stats
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		v.Field(i).SetUint(uint64(i + 1))
	}
	seen := map[uint64]string{}
	s.Each(func(name string, val uint64) {
		if prev, dup := seen[val]; dup {
			t.Errorf("%s and %s report the same field", prev, name)
		}
		seen[val] = name
	})
	if len(seen) != v.NumField() {
		t.Fatalf("Each lists %d counters, Stats has %d fields", len(seen), v.NumField())
	}
}
