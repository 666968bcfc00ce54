package router

import "github.com/taprouter/taprouter/fib"

var fibBlackhole = fib.NextHop{Kind: fib.Blackhole}
