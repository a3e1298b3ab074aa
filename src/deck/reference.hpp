// The deck reference, generated from the schema: `r1hpc --help-deck` text and docs/deck.md.
#pragma once
#include <string>

namespace r1 {

// Every section and key with type, default, range or choices, and its one-line doc.
std::string deck_reference_text();
// docs/deck.md: how decks work, then the same key tables (a test keeps the file equal to this).
std::string deck_reference_markdown();

}  // namespace r1
