//go:build !linux

package spool

import "os"

const writebackChunk = 1 << 62

func startWriteback(*os.File, int64, int64) {}
