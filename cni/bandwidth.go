package cni

import (
	"fmt"
	"math"

	"github.com/taprouter/taprouter/api"
)

// maxBurst is the largest burst, in bits, that the reference bandwidth
// plugin accepts ("burst cannot be more than 4GB": it hands tc the burst
// in bytes as a 32-bit number and refuses burst/8 >= 2^32-1).
const maxBurst = 8*(math.MaxUint32-1) + 7

// bandwidth returns the pod's rate limits from runtimeConfig.bandwidth,
// checked as the reference bandwidth plugin checks them: a rate needs a
// burst and a burst a rate, and a burst is below 4 GB. No limits (absent,
// or every field 0) is nil.
func (c *NetConf) bandwidth() (*api.Bandwidth, error) {
	bw := c.RuntimeConfig.Bandwidth
	if bw == nil || *bw == (api.Bandwidth{}) {
		return nil, nil
	}
	if err := checkRateAndBurst("ingress", bw.IngressRate, bw.IngressBurst); err != nil {
		return nil, err
	}
	if err := checkRateAndBurst("egress", bw.EgressRate, bw.EgressBurst); err != nil {
		return nil, err
	}
	return bw, nil
}

// checkRateAndBurst checks one direction's limit; way is "ingress" or
// "egress", the prefix of its fields.
func checkRateAndBurst(way string, rate, burst uint64) error {
	const field = "runtimeConfig.bandwidth."
	switch {
	case rate != 0 && burst == 0:
		return invalidConf(field+way+"Burst", "missing: %sRate is %d bit/s, and a rate needs a burst (in bits)", way, rate)
	case burst != 0 && rate == 0:
		return invalidConf(field+way+"Rate", "missing: %sBurst is %d bits, and a burst needs a rate (in bit/s)", way, burst)
	case burst > maxBurst:
		return invalidConf(field+way+"Burst", "%d bits is more than 4 GB: at most %d", burst, uint64(maxBurst))
	}
	return nil
}

// compareBandwidth names a difference between the limits a runtime asks
// for and those of the daemon's port.
func compareBandwidth(want, port *api.Bandwidth) []string {
	if w, p := describeBandwidth(want), describeBandwidth(port); w != p {
		return []string{fmt.Sprintf("bandwidth is %s in taprouterd but %s in runtimeConfig", p, w)}
	}
	return nil
}

// describeBandwidth says what limits bw sets, e.g. "ingress 50000000 bit/s
// (burst 1000000 bits), egress unlimited".
func describeBandwidth(bw *api.Bandwidth) string {
	if bw == nil {
		bw = &api.Bandwidth{}
	}
	way := func(name string, rate, burst uint64) string {
		if rate == 0 && burst == 0 {
			return name + " unlimited"
		}
		return fmt.Sprintf("%s %d bit/s (burst %d bits)", name, rate, burst)
	}
	return way("ingress", bw.IngressRate, bw.IngressBurst) + ", " + way("egress", bw.EgressRate, bw.EgressBurst)
}
