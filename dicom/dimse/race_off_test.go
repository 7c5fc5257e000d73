//go:build !race

package dimse_test

const raceDetector = false
