//go:build race

package dimse_test

// raceDetector: the race detector's shadow memory multiplies a process's RSS.
const raceDetector = true
