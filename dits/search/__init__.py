"""Tree search: trees and their table rows, the generic lockstep loop, and the searches on it."""
