// warden console script (skeleton: the live updates are to be built).
"use strict";
