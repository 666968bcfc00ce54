package api

import "errors"

// Status is the body of GET /v1/status: what a CNI plugin needs to know
// about the node's router.
type Status struct {
	Node    string `json:"node"`
	PodCIDR string `json:"podCIDR"`
	Gateway string `json:"gateway"`
	MTU     int    `json:"mtu"`
	Backend string `json:"backend"`
	Ports   int    `json:"ports"`
}

// Readiness is the body of GET /v1/ready: whether the node forwards. The
// answer is 200 when Ready, 503 when not, with Problems saying what is
// missing (one line each), so that an exec probe can print them.
type Readiness struct {
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems,omitempty"`
}

// PortRequest is the body of POST /v1/ports: attach a pod.
type PortRequest struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	NetNS       string `json:"netns"`
	IP          string `json:"ip"`
	MTU         int    `json:"mtu,omitempty"` // 0: the node's pod MTU
	// Bandwidth limits the pod's traffic; nil means no limit.
	Bandwidth *Bandwidth `json:"bandwidth,omitempty"`
}

// Bandwidth is a pod's rate limits, in the units and with the names of the
// CNI "bandwidth" capability (runtimeConfig.bandwidth): rates in bits per
// second, bursts in bits. Ingress is traffic to the pod, egress from it; a
// zero rate means no limit in that direction.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// Port is a pod port added through the API.
type Port struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	NetNS       string `json:"netns"`
	IP          string `json:"ip"`
	MAC         string `json:"mac"`
	MTU         int    `json:"mtu"`
	Gateway     string `json:"gateway"`
	// Name is the router's name for the port.
	Name      string     `json:"name"`
	Bandwidth *Bandwidth `json:"bandwidth,omitempty"`
}

// Attachment names a port by container and interface.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// CheckResult is the body of GET /v1/ports/{containerID}/{ifName}/check.
type CheckResult struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// GCRequest is the body of POST /v1/gc: every port added through the API
// and not listed in Valid is removed.
type GCRequest struct {
	Valid []Attachment `json:"valid"`
}

// GCResult lists what GC removed, and what it failed to remove cleanly.
type GCResult struct {
	Removed []Attachment `json:"removed"`
	Errors  []string     `json:"errors,omitempty"`
}

// Error codes, the "code" of an Error body.
const (
	CodeInvalid     = "invalid"     // a request field is wrong (HTTP 400)
	CodeNotFound    = "not-found"   // no such port (HTTP 404)
	CodeConflict    = "conflict"    // the address or the attachment is taken (HTTP 409)
	CodeUnavailable = "unavailable" // the daemon cannot serve now; retry (HTTP 503)
	CodeInternal    = "internal"    // anything else (HTTP 500)
)

// Error is the body of every non-2xx answer; as a Go error it is what the
// Client returns.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code,omitempty"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// ErrorCode returns err's API error code, or "" when err is not an *Error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Errorf-style constructors used by servers.

// Invalid is a CodeInvalid error about field.
func Invalid(field, msg string) *Error { return &Error{Message: msg, Code: CodeInvalid, Field: field} }

// Conflict is a CodeConflict error.
func Conflict(field, msg string) *Error {
	return &Error{Message: msg, Code: CodeConflict, Field: field}
}

// NotFound is a CodeNotFound error.
func NotFound(msg string) *Error { return &Error{Message: msg, Code: CodeNotFound} }

// Unavailable is a CodeUnavailable error.
func Unavailable(msg string) *Error { return &Error{Message: msg, Code: CodeUnavailable} }
