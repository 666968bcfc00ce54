// Package config reads and validates taprouterd's YAML configuration.
//
// Load returns either a fully validated Config, whose addresses and prefixes
// are parsed net/netip values, or an error of one line that names the field
// and the problem ("peers[1].podCIDR: 10.244.0.0/24 overlaps podCIDR
// 10.244.0.0/24"), so that a person can fix the file without reading code.
// Unknown fields are errors too: a misspelt key must not be silently ignored.
//
// gopkg.in/yaml.v3 parses the file; it reports line numbers and supports
// strict (known-fields-only) decoding.
package config
