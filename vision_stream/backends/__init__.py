"""Analysis backends: Gemini Live, Gemini REST snapshots and the offline analyzer."""
