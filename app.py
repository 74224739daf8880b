"""Persona's Streamlit entry point: page config, navigation, the sidebar every page shares. Routing only."""

from __future__ import annotations

import streamlit as st

import app_support

# An emoji, not a :material/ icon: Streamlit fetches a material favicon from a font CDN, and Persona works offline.
st.set_page_config(page_title="Persona", page_icon="🧠", layout="wide")

# With st.navigation, pages/ is not discovered: every page is registered here, by section.
PAGES = {
    "Journal": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/journal.py", title="Journal", icon=":material/edit_note:"),
        st.Page("pages/timeline.py", title="Timeline", icon=":material/timeline:"),
    ],
    "Explore": [
        st.Page("pages/graph.py", title="Graph", icon=":material/hub:"),
        st.Page("pages/chat.py", title="Chat", icon=":material/forum:"),
        st.Page("pages/memories.py", title="Memories", icon=":material/table_rows:"),
        st.Page("pages/changes.py", title="Changes", icon=":material/history:"),
    ],
    "Settings": [
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
    ],
}

# One flat list in the sidebar: Streamlit's sectioned navigation puts <div> headings inside its <ul>, which screen
# readers (and axe-core, tests/test_browser.py) reject; the pages are listed in the sections' order.
page = st.navigation([p for section in PAGES.values() for p in section])
st.session_state[app_support.SHELL_KEY] = True  # pages leave the sidebar to this file
shared = app_support.clients()  # stops the run with a clear message when the store cannot be reached
app_support.run_page(page, shared)
