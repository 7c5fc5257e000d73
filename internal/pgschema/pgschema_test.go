package pgschema

import (
	"strings"
	"testing"
)

func TestCheckRefusesAGapOrAnUnnamedStep(t *testing.T) {
	ok := Schema{What: "t", Steps: []Step{{Version: 1, Name: "a", SQL: "SELECT 1"}, {Version: 2, Name: "b", SQL: "SELECT 2"}}}
	if err := ok.Check(); err != nil {
		t.Fatalf("steps 1 and 2: %v", err)
	}
	gap := Schema{What: "t", Steps: []Step{{Version: 1, Name: "a", SQL: "SELECT 1"}, {Version: 3, Name: "c", SQL: "SELECT 3"}}}
	if err := gap.Check(); err == nil || !strings.Contains(err.Error(), "step 2 is missing") {
		t.Fatalf("steps 1 and 3: %v, want step 2 missing", err)
	}
	unnamed := Schema{What: "t", Steps: []Step{{Version: 1, SQL: "SELECT 1"}}}
	if err := unnamed.Check(); err == nil {
		t.Fatal("a step without a name passed")
	}
}
