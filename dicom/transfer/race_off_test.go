//go:build !race

package transfer

// raceDetector says the tests run under -race (race_on_test.go).
const raceDetector = false
