// Checks of a whole deck before any compute, every one in this place: the parallel layout against the
// world size, the model's shape, rules between keys, what the stage needs and runs, the input files, and
// the output directory.
#pragma once
#include "deck/deck.hpp"

namespace r1 {

// Throws an r1::Error of kind user at the first problem, naming the deck line of the offending key
// (and mentioning the others involved). Reads the file system, never writes to it. Returns the deck's
// typed configuration, which the run then reads instead of the deck.
RunConfig validate_deck(const Deck& deck, int world_size);

// The rules of the [model] keys alone (part of validate_deck): for a model read from elsewhere, such as a
// Hugging Face config.json mapped onto a deck, whose training keys do not apply.
ModelConfig validate_model(const Deck& deck);

}  // namespace r1
