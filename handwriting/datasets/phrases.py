"""Everyday English phrases of 2-5 words, capitals and punctuation included: what users type into a writer.

bigbank holds random letter strings and synthbank single lower-case words, so neither measures how a model
writes ordinary text.  These phrases were written for this project (greetings, notes, lists, signs, short
letters) and are used by ``handwriting evaluate legibility --texts english``.  Every character is in bigbank's
alphabet plus the space.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ENGLISH_PHRASES", "english_phrases"]

ENGLISH_PHRASES: tuple[str, ...] = (
    "Hello there!", "Good morning, Anna.", "See you soon.", "Thank you so much!", "Happy birthday, Tom!",
    "Call me later.", "Back in five minutes.", "Buy milk and bread.", "Meet at the station.", "Dinner is at eight.",
    "Love, Grandma", "Best wishes, Paul", "Welcome home!", "Please knock first.", "Do not disturb.",
    "Keep the door closed.", "The quick brown fox", "Have a nice day.", "What time is it?", "Where are you?",
    "I will be late.", "Running out of coffee.", "Water the plants.", "Feed the cat twice.", "Pick up the kids.",
    "Dear Mr. Brown,", "Yours sincerely,", "With love from Paris", "Wish you were here.", "Get well soon!",
    "Congratulations on the new job!", "Merry Christmas!", "Happy New Year!", "Lunch with Sarah", "Dentist at 3 pm",
    "Gym on Monday", "Pay the rent.", "Call the plumber.", "Book the tickets.", "Return the library books.",
    "Remember your umbrella.", "It is raining again.", "The sun is out.", "Let's go for a walk.", "How are you doing?",
    "I miss you.", "Sleep well.", "Sweet dreams!", "Good night, darling.", "Take care of yourself.",
    "My shopping list", "Eggs, flour, sugar", "Apples and pears", "Two bottles of water", "Fresh bread, please.",
    "Meeting moved to Friday.", "Room 12, second floor", "Open every day", "Closed on Sundays.", "Ring the bell.",
    "Mind the step.", "Wet paint!", "No parking here.", "Staff only", "Push to open",
    "Chapter one", "Notes from class", "Read pages 10 to 20.", "Quiz on Tuesday", "Bring a pencil.",
    "Well done, Lucy!", "Great work today.", "Try again tomorrow.", "Almost there!", "Nice try.",
    "Once upon a time", "The end.", "To be continued...", "Once more, with feeling.", "And so it begins.",
    "Coffee or tea?", "Milk, no sugar.", "Table for two", "The bill, please.", "Keep the change.",
    "Order pizza tonight?", "Sounds good to me.", "Maybe next week.", "Not today, sorry.", "Of course!",
    "Mom called twice.", "Dad is in the garden.", "Ask Ben about Sunday.", "Send the photos.", "Check your email.",
    "Flight leaves at noon.", "Gate 14, terminal B", "Passport and keys", "Charge the phone.", "Lock the back door.",
    "I love this song.", "Play it again.", "Turn the music down.", "Quiet, please.", "Listen carefully.",
    "Just a quick note", "Thinking of you.", "Hope all is well.", "Talk to you soon.", "Write back soon!",
    "My favourite place", "A cup of tea", "The blue house", "Under the old tree", "By the river",
    "Spring is here.", "Autumn leaves", "First snow today!", "Summer holidays", "A windy evening",
    "Recipe for soup", "Add salt to taste.", "Bake for an hour.", "Stir well.", "Serve it warm.",
    "Happy anniversary!", "Thanks for dinner.", "You made my day.", "Sorry I missed you.", "See you on Monday.",
    "Good luck, Sam!", "You can do it!", "Keep going.", "Never give up.", "One step at a time.",
    "Where is my pen?", "Who took the keys?", "Why not?", "How much is it?", "Is it ready yet?",
    "Left at the bakery", "Turn right at the lights.", "Second house on the left", "Park near the school.",
    "Train to London", "Bus number 7", "Platform 3", "Next stop, Oxford", "Arriving at six.",
    "Bring snacks!", "Party at Kate's", "Dress code is casual.", "Starts at 7.30 sharp.", "Everyone is welcome.",
)


def english_phrases(n: int, seed: int = 0) -> list[str]:
    """``n`` phrases, drawn without repetition in an order fixed by ``seed`` (repeating the list once it is
    used up, each pass in a new order)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xE461]))
    out: list[str] = []
    while len(out) < n:
        out += [ENGLISH_PHRASES[i] for i in rng.permutation(len(ENGLISH_PHRASES))]
    return out[:n]
