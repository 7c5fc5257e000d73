//go:build race

package transfer

// raceDetector says the tests run under -race, whose shadow memory multiplies the
// heap a process touches (about 5 times for the hub's manifests, measured).
const raceDetector = true
