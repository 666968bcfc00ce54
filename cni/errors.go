package cni

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/taprouter/taprouter/api"
)

// daemonError turns a failed call to taprouterd into the CNI error a runtime
// acts on: unreachable, timed out or busy is 11 (try again later), a
// rejected field is 7, an unknown port is 3, anything else 999.
func daemonError(conf *NetConf, doing string, err error) *types.Error {
	msg := fmt.Sprintf("taprouterd could not %s: %v", doing, err)
	var apiErr *api.Error
	switch {
	case errors.Is(err, api.ErrDaemonUnreachable):
		return types.NewError(types.ErrTryAgainLater, msg+" (is taprouterd running with --socket "+conf.Socket+"?)", "")
	case timedOut(err):
		return types.NewError(types.ErrTryAgainLater, msg, "")
	case errors.As(err, &apiErr):
		switch apiErr.Code {
		case api.CodeUnavailable:
			return types.NewError(types.ErrTryAgainLater, msg, "")
		case api.CodeInvalid:
			return types.NewError(types.ErrInvalidNetworkConfig, "invalid network configuration: "+msg, "")
		case api.CodeNotFound:
			return types.NewError(types.ErrUnknownContainer, msg, "")
		}
	}
	return types.NewError(types.ErrInternal, msg, "")
}

func timedOut(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout()
}

// outcomeUnknown reports whether a failed request may still have been
// carried out: the daemon was reached but did not answer.
func outcomeUnknown(err error) bool {
	var apiErr *api.Error
	return !errors.As(err, &apiErr) && !errors.Is(err, api.ErrDaemonUnreachable)
}

// ipamError names the IPAM plugin and the command in err and keeps the CNI
// code the plugin gave; an error that is not the plugin's (it could not be
// found or run) gets code.
func ipamError(conf *NetConf, verb string, err error, code uint) *types.Error {
	var e *types.Error
	if errors.As(err, &e) {
		return types.NewError(e.Code, fmt.Sprintf("ipam %s %s: %s", conf.IPAM.Type, verb, e.Msg), e.Details)
	}
	return types.NewError(code, fmt.Sprintf("ipam %s %s: %v", conf.IPAM.Type, verb, err), "")
}

// undo runs one step of a failed ADD's rollback with its own deadline. If
// the step fails too, the returned error (still carrying err's CNI code)
// says what was left behind.
func undo(err error, what string, step func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
	defer cancel()
	stepErr := step(ctx)
	if stepErr == nil {
		return err
	}
	var e *types.Error
	if errors.As(err, &e) {
		return types.NewError(e.Code, fmt.Sprintf("%s; rollback could not %s: %v", e.Msg, what, stepErr), e.Details)
	}
	return fmt.Errorf("%w; rollback could not %s: %v", err, what, stepErr)
}
