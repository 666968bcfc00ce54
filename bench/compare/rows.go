package main

import (
	"fmt"
	"time"
)

// The ratios the project set as targets (issue 11's "to resolve").
const (
	targetCrossTCP = 0.6 // at least, cross-node TCP throughput
	targetSameTCP  = 0.7 // at least, same-node TCP throughput
	targetRTT      = 2.0 // at most, ping RTT
	targetUDP      = 0.8 // at least, 64-byte UDP packets/s
)

// memoryLimit is the RSS taprouterd may use at the scale of the memory
// row, in MiB.
const memoryLimit = 64

// buildRows turns the measurements into the table's rows.
func buildRows(m measurements, s settings) []Row {
	cross := func(st map[string]stats) stats { return get(st, "cross-node") }
	vx, direct, udp := cross(m.vxlan), cross(m.direct), cross(m.udp)
	flannel, ptp := cross(m.flannel), cross(m.ptp)
	sameTap, samePTP := get(m.vxlan, "same-node"), get(m.ptp, "same-node")

	gbps := func(st stats) float64 { return st.tcp / 1e9 }
	gbps4 := func(st stats) float64 { return st.tcp4 / 1e9 }
	p50 := func(st stats) float64 { return micro(st.rtt50) }
	p99 := func(st stats) float64 { return micro(st.rtt99) }
	median := fmt.Sprintf("median of %d × %v", s.reps, s.duration)
	pings := fmt.Sprintf("%d pings, %v apart", s.pings, s.pingInterval)

	rows := []Row{
		pair("cross-node TCP, vxlan vs kernel vxlan (flannel)", "Gbit/s", "higher", 3, targetCrossTCP, vx, &flannel, gbps, median),
		pair("cross-node TCP, direct vs kernel routes (kindnet ptp)", "Gbit/s", "higher", 3, targetCrossTCP, direct, &ptp, gbps, median),
		pair("cross-node TCP, udp (no kernel reference)", "Gbit/s", "higher", 3, 0, udp, nil, gbps, median),
		pair("same-node TCP, taprouterd (vxlan) vs kernel veth routes", "Gbit/s", "higher", 3, targetSameTCP, sameTap, &samePTP, gbps, median),
		pair("cross-node TCP -P 4, vxlan vs kernel vxlan", "Gbit/s", "higher", 3, targetCrossTCP, vx, &flannel, gbps4, "1 run, 4 streams"),
		pair("cross-node TCP -P 4, direct vs kernel routes", "Gbit/s", "higher", 3, targetCrossTCP, direct, &ptp, gbps4, "1 run, 4 streams"),
		pair("ping p50 cross-node, vxlan vs kernel vxlan", "µs", "lower", 1, targetRTT, vx, &flannel, p50, pings),
		pair("ping p99 cross-node, vxlan vs kernel vxlan", "µs", "lower", 1, targetRTT, vx, &flannel, p99, pings),
		pair("ping p50 cross-node, direct vs kernel routes", "µs", "lower", 1, targetRTT, direct, &ptp, p50, pings),
		pair("ping p99 cross-node, direct vs kernel routes", "µs", "lower", 1, targetRTT, direct, &ptp, p99, pings),
		pair("ping p50 same-node, vs kernel veth routes", "µs", "lower", 1, targetRTT, sameTap, &samePTP, p50, pings),
		pair("ping p99 same-node, vs kernel veth routes", "µs", "lower", 1, targetRTT, sameTap, &samePTP, p99, pings),
		udpRow("UDP 64 B packets/s cross-node, vxlan vs kernel vxlan", vx, flannel, s),
		udpRow("UDP 64 B packets/s cross-node, direct vs kernel routes", direct, ptp, s),
		cpuRow("CPU s/GB cross-node, vxlan: taprouterd vs kernel softirq", vx, &flannel),
		cpuRow("CPU s/GB cross-node, direct: taprouterd vs kernel softirq", direct, &ptp),
		cpuRow("CPU s/GB cross-node, udp: taprouterd (no kernel reference)", udp, nil),
	}
	if s.scalePorts > 0 {
		rows = append(rows, memoryRow(m.scale, s))
	}
	if s.benchTest != "" {
		rows = append(rows, inMemoryRows(m.inMemory, s.benchRuns, s.benchPackets)...)
	}
	return rows
}

// get returns a setup's stats for path; a setup that did not run is an
// error.
func get(setup map[string]stats, path string) stats {
	if st, ok := setup[path]; ok {
		return st
	}
	return stats{err: fmt.Errorf("%s not measured", path)}
}

func micro(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// pair is the row of value(taprouter) beside value(*kernel); kernel nil
// means there is no kernel reference.
func pair(name, unit, better string, digits int, target float64, taprouter stats, kernel *stats, value func(stats) float64, note string) Row {
	var k float64
	kOK := kernel != nil && kernel.err == nil
	if kOK {
		k = value(*kernel)
	}
	r := newRow(name, unit, better, digits, value(taprouter), taprouter.err == nil, k, kOK, target)
	r.Note = failures(note, taprouter, kernel)
	return r
}

// failures appends to note which side of a row failed.
func failures(note string, taprouter stats, kernel *stats) string {
	if taprouter.err != nil {
		note = "taprouter failed (stderr says why); " + note
	}
	if kernel != nil && kernel.err != nil {
		note = "kernel failed (stderr says why); " + note
	}
	return note
}

// udpRow is the 64-byte UDP packets/s row. Its note gives each side's
// sender rate and loss and says where the receiver got all the senders
// sent: there the senders were the limit, not the path.
func udpRow(name string, taprouter, kernel stats, s settings) Row {
	pps := func(st stats) float64 { return st.udp.PacketsPerSecond() }
	r := pair(name, "packets/s", "higher", 0, targetUDP, taprouter, &kernel, pps, "")
	side := func(label string, st stats) string {
		u := st.udp
		if st.err != nil || u.PacketsSent == 0 {
			return ""
		}
		lost := 1 - float64(u.PacketsReceived)/float64(u.PacketsSent)
		text := fmt.Sprintf("%s: sent %.0f/s, %.1f%% lost", label, float64(u.PacketsSent)/u.Seconds, 100*lost)
		if lost < 0.01 {
			text += " (got all the senders sent: sender-limited)"
		}
		return text
	}
	r.Note = failures(fmt.Sprintf("%d clients; %s; %s", s.udpClients, side("taprouter", taprouter), side("kernel", kernel)), taprouter, &kernel)
	return r
}

// cpuRow is CPU seconds per GB received in the 1-stream cross-node runs:
// both taprouterds' utime+stime against the machine-wide softirq time of
// the kernel's run.
func cpuRow(name string, taprouter stats, kernel *stats) Row {
	var k float64
	kOK := kernel != nil && kernel.err == nil
	if kOK {
		k = kernel.cpuPerGB(kernel.softirq)
	}
	r := newRow(name, "CPU s/GB", "lower", 3, taprouter.cpuPerGB(taprouter.daemonCPU), taprouter.err == nil, k, kOK, 0)
	note := "taprouterd: utime+stime of both daemons"
	if taprouter.err == nil {
		note += fmt.Sprintf(", plus %.3f s/GB softirq (machine-wide) in its run", taprouter.cpuPerGB(taprouter.softirq))
	}
	if kernel != nil {
		note += "; kernel: softirq of all CPUs, machine-wide"
	}
	r.Note = failures(note, taprouter, kernel)
	return r
}

// memoryRow is taprouterd's resident memory at scale.
func memoryRow(sc scaleStats, s settings) Row {
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	r := newRow(fmt.Sprintf("taprouterd RSS, %d ports + %d peers (vxlan)", s.scalePorts, s.scalePeers), "MiB", "lower", 1,
		mib(sc.mem.RSS), sc.err == nil, 0, false, 0)
	limit := float64(memoryLimit)
	r.Limit = &limit
	r.Note = "VmRSS after attaching"
	if sc.err == nil {
		r.Note += fmt.Sprintf("; VmHWM %.1f MiB", mib(sc.mem.PeakRSS))
	} else {
		r.Note = "failed (stderr says why); " + r.Note
	}
	return r
}
